derivation { name = "fixed-sha512"; system = "x86_64-linux"; builder = "/bin/sh"; outputHash = "sha512-Yuk8N6/+UeRmsmGdw4zDzmvBPabuqA2lPOKUW3oHcwrEzQLNcXIjk0oZ8RtOEe8JPJqIFA+RnIDBXTYaSES+aQ=="; }
