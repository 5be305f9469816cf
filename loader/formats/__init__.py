"""Input formats: one module per format; each turns a source into readings and rejects."""
