"""EventBridge: rule matching and delivery to targets, and the events other services emit (`events`)."""
