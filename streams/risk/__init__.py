"""Risk control: merchant onboarding and limits (before), the risk processor (during), merchant
health and rating feedback (after), and rule sets written in a small expression language."""
