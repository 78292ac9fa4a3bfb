"" + ./fixtures/hello.txt
