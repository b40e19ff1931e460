-- The overview's "last hour" counts read invocations by start time.
CREATE INDEX invocations_started_at ON invocations(started_at);
