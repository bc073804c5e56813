#!/usr/bin/env python3
"""Generates an HR export of N workers with the example config's columns (seeded: the same N
gives the same file). Usage: gen-workers.py N OUT.csv"""
import csv, random, sys
n, path = int(sys.argv[1]), sys.argv[2]
random.seed(7)
# 60 x 80 names: a few people share a name, as in a real company of this size.
given = ["Jane", "John", "Zoë", "José María", "Łukasz", "Ananya", "Søren", "Chloé", "Raj", "Mia", "Liam", "Grace",
         "Olivia", "Noah", "Amelia", "Oliver", "Isla", "Arjun", "Priya", "Wei", "Yuki", "Hiroshi", "Fatima", "Omar",
         "Lucía", "Mateo", "Sofia", "Luca", "Emma", "Lars", "Ingrid", "Anna", "Piotr", "Ewa", "Kofi", "Amara",
         "Tomás", "Aoife", "Seán", "Niamh", "Chen", "Mei", "Ravi", "Deepa", "Ahmed", "Leila", "Ivan", "Olga",
         "Pierre", "Camille", "Jonas", "Elif", "Mehmet", "Ayşe", "Thabo", "Zanele", "Diego", "Valentina", "Kai", "Nora"]
family = ["Smith", "O'Brien-Smith", "García", "Żółć", "Iyer", "Kierkegård", "Martin", "Patel", "Nguyễn", "Kim",
          "Jones", "Williams", "Brown", "Taylor", "Davies", "Evans", "Wilson", "Müller", "Schmidt", "Schneider",
          "Fischer", "Weber", "Dubois", "Lefèvre", "Moreau", "Rossi", "Russo", "Bianchi", "Fernández", "López",
          "Martínez", "Silva", "Santos", "Kowalski", "Nowak", "Novák", "Horvát", "Popescu", "Ivanova", "Petrov",
          "Yılmaz", "Kaya", "Cohen", "Levi", "Khan", "Ahmed", "Singh", "Sharma", "Gupta", "Reddy",
          "Wang", "Li", "Zhang", "Liu", "Tanaka", "Suzuki", "Sato", "Park", "Choi", "Lee",
          "O'Connor", "Murphy", "Kelly", "Walsh", "Byrne", "Ryan", "Andersson", "Johansson", "Hansen", "Larsen",
          "Nielsen", "De Vries", "Jansen", "Van Dijk", "Okafor", "Mensah", "Dlamini", "Mbeki", "Haddad", "Nasser"]
departments = ["Engineering", "Sales", "Finance", "Customer Success", "Marketing", "People"]
zones = ["Europe/London", "America/New_York", "America/Los_Angeles", "Australia/Sydney", "Asia/Kolkata", "Europe/Berlin", ""]
header = ["Employee ID", "First Name", "Last Name", "Preferred Name", "Middle Name", "Personal Email", "Status",
          "Hire Date", "Termination Date", "Termination Type", "Worker Type", "Job Title", "Department", "Division",
          "Cost Center", "Company", "Location", "Country", "Time Zone", "Manager ID", "Badge Number"]
with open(path, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(header)
    for i in range(n):
        eid = 100000 + i
        roll = random.random()
        status, term, ttype, hire = "Active", "", "", f"20{random.randint(15, 25)}-{random.randint(1, 12):02d}-{random.randint(1, 28):02d}"
        if roll < 0.05:
            hire = f"2026-12-{random.randint(2, 28):02d}"
        elif roll < 0.10:
            term, ttype = f"2026-12-{random.randint(2, 28):02d}", "voluntary"
        elif roll < 0.13:
            status, term, ttype = "Terminated", "2026-10-31", random.choice(["voluntary", "involuntary"])
        w.writerow([eid, random.choice(given), random.choice(family), "", "", "", status, hire, term, ttype,
                    random.choice(["Employee"] * 9 + ["Contractor"]), "Engineer", random.choice(departments),
                    "Ops", "CC-1", "Acme Ltd", "London", random.choice(["GB", "US", "DE", "IN", "AU"]),
                    random.choice(zones), 100000 if i else "", f"B-{i}"])
