"""Lambda entry points. Thin: parse the event, call jobcore, shape the response, log and measure."""
