"""Step Functions: fixes to moto's executing backend, status-change hooks and saved executions (`sfn`)."""
