map builtins.parseDrvName [ "hello-2.10" "foo-bar-1.0-beta" "nodashes" "a-b-c" "firefox-3.6-pre" ]
