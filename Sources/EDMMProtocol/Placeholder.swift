// EDMMProtocol
