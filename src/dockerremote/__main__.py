from dockerremote.cli import main

raise SystemExit(main())
