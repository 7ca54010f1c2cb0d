-- One job inserted per transaction: what one synchronous commit costs here.
INSERT INTO job (args) VALUES ('{}');
