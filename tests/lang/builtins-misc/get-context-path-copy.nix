builtins.getContext "${./fixtures/hello.txt}"
