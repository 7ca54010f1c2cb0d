-- Claim :batch jobs in one statement (FOR UPDATE SKIP LOCKED), complete all
-- of them in a second: batched claims and completions, as fx's worker does.
-- Needs -M prepared (the id array is passed as one parameter).
WITH c AS (
	SELECT id FROM job WHERE status = 'queued'
	 ORDER BY id LIMIT :batch FOR UPDATE SKIP LOCKED),
u AS (
	UPDATE job j SET status = 'running', started_at = now()
	  FROM c WHERE j.id = c.id RETURNING j.id)
SELECT array_agg(id) AS ids FROM u \gset
UPDATE job SET status = 'succeeded', result = 'null', finished_at = now()
 WHERE id = ANY (:ids::bigint[]);
