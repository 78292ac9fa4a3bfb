(import ./fixtures/dir).helper 20
