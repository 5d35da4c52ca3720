-- Placeholder for the 0002 migration of another branch (internal/migration
-- wants versions without gaps, and 0003_templates follows it). Delete this
-- file when that branch's 0002 is merged.
SELECT 1;
