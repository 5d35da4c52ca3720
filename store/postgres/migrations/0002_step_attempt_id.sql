-- The fencing token of a step's last attempt (taskertype.Step.AttemptID),
-- the nil UUID before the first attempt. An attempt's outcome is stored only
-- while the step still carries its token. A constant default adds the column
-- without rewriting the table.
ALTER TABLE steps ADD COLUMN attempt_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000';
