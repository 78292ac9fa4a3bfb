./fixtures/hello.txt
