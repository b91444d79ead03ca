"""Schemas and seeded data for the bundled mini-Spider databases (used by ``build_mini_spider.py``).

Four small databases in the style of Spider: ``concert_singer``, ``college``, ``store`` and ``flight``.
Every database declares primary and foreign keys; rows come from a ``random.Random`` seeded per database,
so the generated SQLite files are identical on every run.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["DATABASES", "Rows"]

Rows = dict[str, list[tuple[object, ...]]]

CONCERT_SINGER_DDL = """
CREATE TABLE stadium (
    Stadium_ID INTEGER PRIMARY KEY, Location TEXT, Name TEXT, Capacity INTEGER,
    Highest INTEGER, Lowest INTEGER, Average INTEGER);
CREATE TABLE singer (
    Singer_ID INTEGER PRIMARY KEY, Name TEXT, Country TEXT, Song_Name TEXT,
    Song_release_year TEXT, Age INTEGER, Is_male BOOLEAN);
CREATE TABLE concert (
    concert_ID INTEGER PRIMARY KEY, concert_Name TEXT, Theme TEXT,
    Stadium_ID INTEGER REFERENCES stadium(Stadium_ID), Year TEXT);
CREATE TABLE singer_in_concert (
    concert_ID INTEGER REFERENCES concert(concert_ID), Singer_ID INTEGER REFERENCES singer(Singer_ID),
    PRIMARY KEY (concert_ID, Singer_ID));
"""

COLLEGE_DDL = """
CREATE TABLE department (
    dept_id INTEGER PRIMARY KEY, name TEXT, building TEXT, budget REAL);
CREATE TABLE instructor (
    instructor_id INTEGER PRIMARY KEY, name TEXT, dept_id INTEGER REFERENCES department(dept_id),
    salary REAL, hire_year INTEGER);
CREATE TABLE student (
    student_id INTEGER PRIMARY KEY, name TEXT, dept_id INTEGER REFERENCES department(dept_id),
    age INTEGER, gpa REAL, enroll_year INTEGER);
CREATE TABLE course (
    course_id INTEGER PRIMARY KEY, title TEXT, dept_id INTEGER REFERENCES department(dept_id),
    credits INTEGER, instructor_id INTEGER REFERENCES instructor(instructor_id));
CREATE TABLE enrollment (
    student_id INTEGER REFERENCES student(student_id), course_id INTEGER REFERENCES course(course_id),
    semester TEXT, grade TEXT, PRIMARY KEY (student_id, course_id));
"""

STORE_DDL = """
CREATE TABLE customer (
    customer_id INTEGER PRIMARY KEY, name TEXT, city TEXT, email TEXT, signup_year INTEGER);
CREATE TABLE product (
    product_id INTEGER PRIMARY KEY, name TEXT, category TEXT, price REAL, stock INTEGER);
CREATE TABLE orders (
    order_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customer(customer_id),
    order_date TEXT, status TEXT);
CREATE TABLE order_item (
    order_id INTEGER REFERENCES orders(order_id), product_id INTEGER REFERENCES product(product_id),
    quantity INTEGER, PRIMARY KEY (order_id, product_id));
"""

FLIGHT_DDL = """
CREATE TABLE airline (
    airline_id INTEGER PRIMARY KEY, name TEXT, country TEXT, founded INTEGER);
CREATE TABLE airport (
    airport_code TEXT PRIMARY KEY, name TEXT, city TEXT, country TEXT);
CREATE TABLE aircraft (
    aircraft_id INTEGER PRIMARY KEY, model TEXT, capacity INTEGER, range_km INTEGER);
CREATE TABLE flight (
    flight_id INTEGER PRIMARY KEY, airline_id INTEGER REFERENCES airline(airline_id),
    aircraft_id INTEGER REFERENCES aircraft(aircraft_id),
    source_airport TEXT REFERENCES airport(airport_code), dest_airport TEXT REFERENCES airport(airport_code),
    distance_km INTEGER, price REAL, departure_date TEXT);
"""

FIRST = [
    "Ana",
    "Ben",
    "Chloe",
    "Dmitri",
    "Elif",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemi",
    "Liam",
    "Mei",
    "Nadia",
    "Omar",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Victor",
    "Wen",
    "Yusuf",
]
LAST = [
    "Silva",
    "Novak",
    "Okafor",
    "Larsen",
    "Kim",
    "Haddad",
    "Moreau",
    "Tanaka",
    "Rossi",
    "Schmidt",
    "Patel",
    "Nguyen",
    "Garcia",
    "Kowalski",
    "Ivanova",
    "Brown",
]


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def concert_singer_rows(rng: random.Random) -> Rows:
    places = [
        ("Raith Rovers", "Stark's Park"),
        ("Ayr United", "Somerset Park"),
        ("East Fife", "Bayview Stadium"),
        ("Queen's Park", "Hampden Park"),
        ("Stirling Albion", "Forthbank Stadium"),
        ("Arbroath", "Gayfield Park"),
        ("Alloa Athletic", "Recreation Park"),
        ("Peterhead", "Balmoor"),
    ]
    stadiums = []
    for i, (location, name) in enumerate(places, start=1):
        capacity = rng.randrange(2000, 52000, 100)
        lowest = rng.randrange(300, 1500)
        highest = rng.randrange(lowest + 500, lowest + 5000)
        stadiums.append((i, location, name, capacity, highest, lowest, (highest + lowest) // 2))
    countries = ["Netherlands", "United States", "France", "Japan", "Brazil", "Nigeria"]
    songs = ["Sun", "Gentleman", "Love", "Hey Oh", "Dream", "Blue Night", "Rivers", "Summer Rain", "Echo", "Gold"]
    singers = []
    for i in range(1, 13):
        singers.append(
            (
                i,
                _name(rng),
                rng.choice(countries),
                songs[(i - 1) % len(songs)],
                str(rng.randrange(1998, 2016)),
                rng.randrange(19, 62),
                rng.choice(["T", "F"]),
            )
        )
    themes = ["Free choice", "Bleeding Love", "Wide Awake", "Happy Tonight", "Party All Night", "Classic Hits"]
    concerts = []
    for i in range(1, 11):
        concerts.append(
            (
                i,
                f"{rng.choice(['Auditions', 'Super bootcamp', 'Home Visits', 'Week'])} {i}",
                rng.choice(themes),
                rng.randrange(1, 7),
                str(rng.choice([2013, 2014, 2015])),
            )
        )
    # make sure one stadium hosted concerts in both 2014 and 2015
    concerts[8] = (*concerts[8][:3], concerts[3][3], "2014")
    links = sorted({(rng.randrange(1, 11), rng.randrange(1, 11)) for _ in range(24)})
    return {"stadium": stadiums, "singer": singers, "concert": concerts, "singer_in_concert": links}


def college_rows(rng: random.Random) -> Rows:
    depts = [
        (1, "Computer Science", "Taylor", 0.0),
        (2, "Physics", "Watson", 0.0),
        (3, "History", "Painter", 0.0),
        (4, "Biology", "Watson", 0.0),
        (5, "Music", "Packard", 0.0),
        (6, "Finance", "Painter", 0.0),
    ]
    depts = [(d, n, b, float(rng.randrange(50, 130) * 1000)) for d, n, b, _ in depts]
    instructors = [
        (i, _name(rng), rng.randrange(1, 6), float(rng.randrange(40, 130) * 1000), rng.randrange(1995, 2022))
        for i in range(1, 15)
    ]
    students = [
        (
            i,
            _name(rng),
            rng.randrange(1, 7),
            rng.randrange(18, 31),
            round(rng.uniform(2.0, 4.0), 2),
            rng.randrange(2018, 2024),
        )
        for i in range(1, 31)
    ]
    titles = [
        "Intro to Programming",
        "Databases",
        "Machine Learning",
        "Quantum Mechanics",
        "Optics",
        "World History",
        "Medieval Europe",
        "Genetics",
        "Ecology",
        "Music Theory",
        "Jazz Ensemble",
        "Corporate Finance",
        "Algorithms",
        "Thermodynamics",
    ]
    dept_of = [1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 1, 2]
    courses = []
    for i, (title, dept) in enumerate(zip(titles, dept_of, strict=True), start=1):
        teachers = [row[0] for row in instructors if row[2] == dept] or [1]
        courses.append((i, title, dept, rng.choice([2, 3, 4]), rng.choice(teachers)))
    pairs = sorted({(rng.randrange(1, 31), rng.randrange(1, 15)) for _ in range(80)})
    enrollment = [(s, c, rng.choice(["Fall 2023", "Spring 2024"]), rng.choice("ABBCCD")) for s, c in pairs]
    return {
        "department": depts,
        "instructor": instructors,
        "student": students,
        "course": courses,
        "enrollment": enrollment,
    }


def store_rows(rng: random.Random) -> Rows:
    cities = ["Lisbon", "Austin", "Osaka", "Lagos", "Berlin", "Toronto"]
    customers = []
    for i in range(1, 21):
        name = _name(rng)
        customers.append(
            (i, name, rng.choice(cities), f"{name.split()[0].lower()}{i}@example.com", rng.randrange(2016, 2024))
        )
    catalogue = [
        ("Laptop", "electronics", 900),
        ("Headphones", "electronics", 120),
        ("Phone", "electronics", 650),
        ("Desk Lamp", "home", 35),
        ("Coffee Maker", "home", 80),
        ("Blender", "home", 60),
        ("Novel", "books", 15),
        ("Cookbook", "books", 25),
        ("Atlas", "books", 40),
        ("Running Shoes", "sports", 95),
        ("Yoga Mat", "sports", 30),
        ("Tennis Racket", "sports", 140),
    ]
    products = [
        (i, name, cat, float(price), rng.randrange(0, 200)) for i, (name, cat, price) in enumerate(catalogue, start=1)
    ]
    orders = []
    for i in range(1, 41):
        orders.append(
            (
                i,
                rng.randrange(1, 19),
                f"2023-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
                rng.choice(["shipped", "shipped", "delivered", "pending", "cancelled"]),
            )
        )
    items = sorted({(rng.randrange(1, 41), rng.randrange(1, 13)) for _ in range(90)})
    order_items = [(o, p, rng.randrange(1, 6)) for o, p in items]
    return {"customer": customers, "product": products, "orders": orders, "order_item": order_items}


def flight_rows(rng: random.Random) -> Rows:
    airlines = [
        (1, "Skyway", "United States", 1985),
        (2, "AeroNord", "Norway", 1999),
        (3, "Sol Air", "Spain", 2004),
        (4, "Pacifica", "Japan", 1972),
        (5, "Kestrel", "United Kingdom", 2011),
    ]
    airports = [
        ("JFK", "John F Kennedy", "New York", "United States"),
        ("LAX", "Los Angeles Intl", "Los Angeles", "United States"),
        ("OSL", "Gardermoen", "Oslo", "Norway"),
        ("MAD", "Barajas", "Madrid", "Spain"),
        ("HND", "Haneda", "Tokyo", "Japan"),
        ("LHR", "Heathrow", "London", "United Kingdom"),
        ("BCN", "El Prat", "Barcelona", "Spain"),
        ("ITM", "Itami", "Osaka", "Japan"),
    ]
    aircraft = [
        (1, "Airbus A320", 180, 6100),
        (2, "Boeing 737", 160, 5600),
        (3, "Boeing 787", 290, 14000),
        (4, "Airbus A350", 325, 15000),
        (5, "Embraer E190", 100, 4500),
        (6, "ATR 72", 70, 1500),
    ]
    codes = [a[0] for a in airports]
    flights = []
    for i in range(1, 41):
        source, dest = rng.sample(codes, 2)
        distance = rng.randrange(300, 11000, 10)
        flights.append(
            (
                i,
                rng.randrange(1, 6),
                rng.randrange(1, 6),
                source,
                dest,
                distance,
                float(round(50 + distance * rng.uniform(0.05, 0.12))),
                f"2024-{rng.randrange(1, 7):02d}-{rng.randrange(1, 29):02d}",
            )
        )
    return {"airline": airlines, "airport": airports, "aircraft": aircraft, "flight": flights}


DATABASES: dict[str, tuple[str, Callable[[random.Random], Rows], int]] = {
    "concert_singer": (CONCERT_SINGER_DDL, concert_singer_rows, 11),
    "college": (COLLEGE_DDL, college_rows, 22),
    "store": (STORE_DDL, store_rows, 33),
    "flight": (FLIGHT_DDL, flight_rows, 44),
}
