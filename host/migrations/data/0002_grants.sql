-- Grants are part of each version, like its limits.
ALTER TABLE function_versions ADD COLUMN grants TEXT NOT NULL DEFAULT '{}';
