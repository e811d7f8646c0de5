"""Where normalised updates go: bounded, batched, independent of each other."""
