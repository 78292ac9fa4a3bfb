[ (dirOf ./fixtures/hello.txt) (dirOf /a/b) (dirOf /a) ]
