-- Claim one job and complete it in the same transaction (one statement).
WITH c AS (
	SELECT id FROM job WHERE status = 'queued'
	 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
UPDATE job j SET status = 'succeeded', result = 'null',
	   started_at = now(), finished_at = now()
  FROM c WHERE j.id = c.id;
