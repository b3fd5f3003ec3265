"""What operators read: status, metrics, the sharing report and explanations."""
