builtins.concatStringsSep "," [ ./fixtures/hello.txt "x" ]
