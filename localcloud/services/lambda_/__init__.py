"""Lambda: the runner of the deployed code (`runner`, with the environment subprocess `bootstrap`), the
`AWS::Lambda::EventInvokeConfig` model, and the event source mappings that Lambda polls
(`event_source_mapping`)."""
