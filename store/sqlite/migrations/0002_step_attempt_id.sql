-- The fencing token of a step's last attempt (taskertype.Step.AttemptID):
-- canonical UUID text, NULL before the first attempt. An attempt's outcome
-- is stored only while the step still carries its token.
ALTER TABLE steps ADD COLUMN attempt_id TEXT;
