// SGXSimulator
