toString ./fixtures/x
