builtins.match "([^=]+)=(.*)" "key=val=ue"
