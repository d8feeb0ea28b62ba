"""CloudWatch: the `AWS::CloudWatch::Alarm` model (`cloudwatch_alarm`), alarm evaluation
(`alarm_evaluator`) and the metric-math expressions it evaluates (`metric_math`)."""
