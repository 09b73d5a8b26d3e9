"""Channel adapters (protocol conversion) and channel simulators with their bill files."""
