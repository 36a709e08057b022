"""Campaigns: one message sent to many contacts through one account, at the account's rate."""
