from leverchat.cli import main

raise SystemExit(main())
