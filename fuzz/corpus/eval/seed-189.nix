"${./fixtures/tree}"
