// EDMMClient
