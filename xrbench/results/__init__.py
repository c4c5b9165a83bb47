"""Results: records with provenance, the leaderboard, comparisons."""
