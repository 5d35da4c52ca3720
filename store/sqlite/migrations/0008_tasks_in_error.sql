-- The tasks in error, for the rebuild of the step queues at open (see
-- stepqueues.go): their enqueued steps keep their messages, as an operator
-- may reset the task. Few rows, and written only as a task enters or
-- leaves error.
CREATE INDEX tasks_in_error ON tasks (id) WHERE state = 'error';
