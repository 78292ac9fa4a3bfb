"${./fixtures/tree}/sub/inner.txt"
