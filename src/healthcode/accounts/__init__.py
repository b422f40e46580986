"""Sign-in by phone and one-time code, sessions, officials and API keys."""
