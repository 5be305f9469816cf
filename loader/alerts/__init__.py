"""The alert runner: evaluates the SQL alert lifecycle and delivers its notification outbox."""
