-- Claim one job (FOR UPDATE SKIP LOCKED) in one transaction, complete it in
-- a second: what a worker does per job without batching.
UPDATE job SET status = 'running', started_at = now()
 WHERE id = (SELECT id FROM job WHERE status = 'queued'
			 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id \gset
UPDATE job SET status = 'succeeded', result = 'null', finished_at = now()
 WHERE id = :id;
