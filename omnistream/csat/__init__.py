"""CSAT: satisfaction surveys sent to customers, answered by a secret link, and their analytics."""
