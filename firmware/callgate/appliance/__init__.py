"""The appliance around the firmware: first-boot provisioning, the [system] table, and
updates with rollback. Every path is under a `Layout`, so tests run on temporary folders."""
