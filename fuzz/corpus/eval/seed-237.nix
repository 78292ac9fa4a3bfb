[ (baseNameOf ./fixtures/hello.txt) (dirOf ./fixtures/hello.txt) ]
