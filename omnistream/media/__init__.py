"""Media: files agents upload and customers send, kept on local disk or in an S3-compatible bucket."""
