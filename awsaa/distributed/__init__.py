"""Everything that uses Ray: Tune trainables, the search's actors, job submission."""
