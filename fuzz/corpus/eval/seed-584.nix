"from b"
