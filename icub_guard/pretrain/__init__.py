"""Pre-training the project's own backbone on images it generates (issue 21)."""
