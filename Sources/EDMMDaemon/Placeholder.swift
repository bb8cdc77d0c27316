// EDMMDaemon
