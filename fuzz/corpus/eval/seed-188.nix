"${./fixtures/hello.txt}"
