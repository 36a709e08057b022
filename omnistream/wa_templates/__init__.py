"""WhatsApp message templates of the tenant's business accounts, created on and synced from Meta."""
