"""Small interfaces in front of boto3, so logic can be tested with fakes."""
