"""Hand-written question / gold SQL pairs for the bundled mini-Spider (used by ``build_mini_spider.py``).

Gold SQL follows Spider's conventions: table aliases ``T1``, ``T2``..., ``count(*)``, and some string literals
in double quotes (as in Spider's gold files). Hardness levels are computed by the evaluator, not written here.
"""

from __future__ import annotations

__all__ = ["QUESTIONS"]

# (db_id, question, query)
QUESTIONS: list[tuple[str, str, str]] = [
    # ---------------------------------------------------------------- concert_singer
    ("concert_singer", "How many singers do we have?", "SELECT count(*) FROM singer"),
    ("concert_singer", "What are the names of all stadiums?", "SELECT Name FROM stadium"),
    ("concert_singer", "List the names of singers older than 40.", "SELECT Name FROM singer WHERE Age > 40"),
    (
        "concert_singer",
        "Show the names of all singers ordered by age from the oldest to the youngest.",
        "SELECT Name FROM singer ORDER BY Age DESC",
    ),
    (
        "concert_singer",
        "What is the average, minimum, and maximum age of all singers from France?",
        "SELECT avg(Age) ,  min(Age) ,  max(Age) FROM singer WHERE Country  =  'France'",
    ),
    (
        "concert_singer",
        "Show the name and release year of the song by the youngest singer.",
        "SELECT Song_Name ,  Song_release_year FROM singer ORDER BY Age LIMIT 1",
    ),
    (
        "concert_singer",
        "What are all distinct countries where singers above age 30 are from?",
        "SELECT DISTINCT Country FROM singer WHERE Age  >  30",
    ),
    (
        "concert_singer",
        "Show all countries and the number of singers in each country.",
        "SELECT Country ,  count(*) FROM singer GROUP BY Country",
    ),
    (
        "concert_singer",
        "List all song names by singers above the average age.",
        "SELECT Song_Name FROM singer WHERE Age  >  (SELECT avg(Age) FROM singer)",
    ),
    (
        "concert_singer",
        "Show location and name for all stadiums with a capacity between 5000 and 10000.",
        "SELECT Location ,  Name FROM stadium WHERE Capacity BETWEEN 5000 AND 10000",
    ),
    (
        "concert_singer",
        "What is the maximum capacity and the average of all stadiums?",
        "SELECT max(Capacity) ,  avg(Capacity) FROM stadium",
    ),
    (
        "concert_singer",
        "What is the name and capacity of the stadium with the highest average attendance?",
        "SELECT Name ,  Capacity FROM stadium ORDER BY Average DESC LIMIT 1",
    ),
    (
        "concert_singer",
        "How many concerts are there in year 2014 or 2015?",
        "SELECT count(*) FROM concert WHERE Year  =  2014 OR Year  =  2015",
    ),
    (
        "concert_singer",
        "Show the stadium name and the number of concerts in each stadium.",
        "SELECT T2.Name ,  count(*) FROM concert AS T1 JOIN stadium AS T2 ON T1.Stadium_ID  =  T2.Stadium_ID "
        "GROUP BY T1.Stadium_ID",
    ),
    (
        "concert_singer",
        "Show the stadium name and capacity with the most number of concerts in year 2014 or after.",
        "SELECT T2.Name ,  T2.Capacity FROM concert AS T1 JOIN stadium AS T2 ON T1.Stadium_ID  =  T2.Stadium_ID "
        "WHERE T1.Year  >=  2014 GROUP BY T2.Stadium_ID ORDER BY count(*) DESC LIMIT 1",
    ),
    (
        "concert_singer",
        "Which year has the most concerts?",
        "SELECT Year FROM concert GROUP BY Year ORDER BY count(*) DESC LIMIT 1",
    ),
    (
        "concert_singer",
        "Show the names of stadiums without any concerts.",
        "SELECT Name FROM stadium WHERE Stadium_ID NOT IN (SELECT Stadium_ID FROM concert)",
    ),
    (
        "concert_singer",
        "Show countries where a singer above age 40 and a singer below 30 are from.",
        "SELECT Country FROM singer WHERE Age  >  40 INTERSECT SELECT Country FROM singer WHERE Age  <  30",
    ),
    (
        "concert_singer",
        "Show names for all stadiums except for stadiums having a concert in year 2014.",
        "SELECT Name FROM stadium EXCEPT SELECT T2.Name FROM concert AS T1 JOIN stadium AS T2 "
        "ON T1.Stadium_ID  =  T2.Stadium_ID WHERE T1.Year  =  2014",
    ),
    (
        "concert_singer",
        "Show the name and theme of all concerts and the number of singers in each concert.",
        "SELECT T2.concert_Name ,  T2.Theme ,  count(*) FROM singer_in_concert AS T1 JOIN concert AS T2 "
        "ON T1.concert_ID  =  T2.concert_ID GROUP BY T2.concert_ID",
    ),
    (
        "concert_singer",
        "List singer names and the number of concerts for each singer.",
        "SELECT T2.Name ,  count(*) FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.Singer_ID  =  T2.Singer_ID "
        "GROUP BY T2.Singer_ID",
    ),
    (
        "concert_singer",
        "List all singer names in concerts in year 2014.",
        "SELECT T2.Name FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.Singer_ID  =  T2.Singer_ID "
        "JOIN concert AS T3 ON T1.concert_ID  =  T3.concert_ID WHERE T3.Year  =  2014",
    ),
    (
        "concert_singer",
        "What is the name and country of the singer whose song name contains the word 'Hey'?",
        "SELECT Name ,  Country FROM singer WHERE Song_Name LIKE '%Hey%'",
    ),
    (
        "concert_singer",
        "Find the name and location of the stadiums which some concerts happened in the years of both 2014 and 2015.",
        "SELECT T2.Name ,  T2.Location FROM concert AS T1 JOIN stadium AS T2 ON T1.Stadium_ID  =  T2.Stadium_ID "
        "WHERE T1.Year  =  2014 INTERSECT SELECT T2.Name ,  T2.Location FROM concert AS T1 JOIN stadium AS T2 "
        "ON T1.Stadium_ID  =  T2.Stadium_ID WHERE T1.Year  =  2015",
    ),
    (
        "concert_singer",
        "Find the number of concerts happened in the stadium with the highest average attendance.",
        "SELECT count(*) FROM concert WHERE Stadium_ID  =  (SELECT Stadium_ID FROM stadium "
        "ORDER BY Average DESC LIMIT 1)",
    ),
    (
        "concert_singer",
        "What are the names of the singers who performed in no concert?",
        "SELECT Name FROM singer WHERE Singer_ID NOT IN (SELECT Singer_ID FROM singer_in_concert)",
    ),
    # ---------------------------------------------------------------- college
    ("college", "How many departments are there?", "SELECT count(*) FROM department"),
    ("college", "List the titles of all courses.", "SELECT title FROM course"),
    (
        "college",
        "What are the names of the instructors hired after 2010?",
        "SELECT name FROM instructor WHERE hire_year  >  2010",
    ),
    (
        "college",
        "Which departments are located in the Watson building?",
        'SELECT name FROM department WHERE building  =  "Watson"',
    ),
    ("college", "What is the highest salary among instructors?", "SELECT max(salary) FROM instructor"),
    ("college", "List the student names sorted by GPA from high to low.", "SELECT name FROM student ORDER BY gpa DESC"),
    (
        "college",
        "Show the names and ages of students younger than 21.",
        "SELECT name ,  age FROM student WHERE age  <  21",
    ),
    (
        "college",
        "How many students enrolled each year?",
        "SELECT enroll_year ,  count(*) FROM student GROUP BY enroll_year",
    ),
    (
        "college",
        "What is the average salary of instructors in each department?",
        "SELECT dept_id ,  avg(salary) FROM instructor GROUP BY dept_id",
    ),
    (
        "college",
        "Which building has the largest total department budget?",
        "SELECT building FROM department GROUP BY building ORDER BY sum(budget) DESC LIMIT 1",
    ),
    (
        "college",
        "Give the names of the three students with the highest GPA.",
        "SELECT name FROM student ORDER BY gpa DESC LIMIT 3",
    ),
    (
        "college",
        "Find the names of students in the Physics department.",
        "SELECT T1.name FROM student AS T1 JOIN department AS T2 ON T1.dept_id  =  T2.dept_id "
        'WHERE T2.name  =  "Physics"',
    ),
    (
        "college",
        "Show the title of each course and the name of its instructor.",
        "SELECT T1.title ,  T2.name FROM course AS T1 JOIN instructor AS T2 ON T1.instructor_id  =  T2.instructor_id",
    ),
    (
        "college",
        "Which departments have more than two instructors?",
        "SELECT T2.name FROM instructor AS T1 JOIN department AS T2 ON T1.dept_id  =  T2.dept_id "
        "GROUP BY T1.dept_id HAVING count(*)  >  2",
    ),
    (
        "college",
        "What is the name of the department with the most students?",
        "SELECT T2.name FROM student AS T1 JOIN department AS T2 ON T1.dept_id  =  T2.dept_id "
        "GROUP BY T1.dept_id ORDER BY count(*) DESC LIMIT 1",
    ),
    (
        "college",
        "Find the names of instructors earning more than the average salary.",
        "SELECT name FROM instructor WHERE salary  >  (SELECT avg(salary) FROM instructor)",
    ),
    (
        "college",
        "Which students are not enrolled in any course?",
        "SELECT name FROM student WHERE student_id NOT IN (SELECT student_id FROM enrollment)",
    ),
    (
        "college",
        "List the names of students who took a course in Fall 2023 and also one in Spring 2024.",
        "SELECT T1.name FROM student AS T1 JOIN enrollment AS T2 ON T1.student_id  =  T2.student_id "
        "WHERE T2.semester  =  'Fall 2023' INTERSECT SELECT T1.name FROM student AS T1 JOIN enrollment AS T2 "
        "ON T1.student_id  =  T2.student_id WHERE T2.semester  =  'Spring 2024'",
    ),
    (
        "college",
        "Show the titles of courses with 4 credits or offered by department 1.",
        "SELECT title FROM course WHERE credits  =  4 OR dept_id  =  1",
    ),
    (
        "college",
        "What are the names of students who got an A in the Databases course?",
        "SELECT T1.name FROM student AS T1 JOIN enrollment AS T2 ON T1.student_id  =  T2.student_id "
        "JOIN course AS T3 ON T2.course_id  =  T3.course_id WHERE T3.title  =  'Databases' AND T2.grade  =  'A'",
    ),
    (
        "college",
        "How many courses does each instructor teach? Show instructor names and counts, most courses first.",
        "SELECT T2.name ,  count(*) FROM course AS T1 JOIN instructor AS T2 ON T1.instructor_id  =  T2.instructor_id "
        "GROUP BY T1.instructor_id ORDER BY count(*) DESC",
    ),
    (
        "college",
        "Find the average GPA and maximum age of students enrolled after 2020.",
        "SELECT avg(gpa) ,  max(age) FROM student WHERE enroll_year  >  2020",
    ),
    (
        "college",
        "List the names of departments that have no instructor.",
        "SELECT name FROM department EXCEPT SELECT T2.name FROM instructor AS T1 JOIN department AS T2 "
        "ON T1.dept_id  =  T2.dept_id",
    ),
    (
        "college",
        "Which course titles contain the word 'History'?",
        "SELECT title FROM course WHERE title LIKE '%History%'",
    ),
    (
        "college",
        "Find the name and GPA of students older than 25 with a GPA above 3.0.",
        "SELECT name ,  gpa FROM student WHERE age  >  25 AND gpa  >  3.0",
    ),
    (
        "college",
        "What is the title of the course with the most enrolled students, among courses with at least 3 credits?",
        "SELECT T2.title FROM enrollment AS T1 JOIN course AS T2 ON T1.course_id  =  T2.course_id "
        "WHERE T2.credits  >=  3 GROUP BY T1.course_id ORDER BY count(*) DESC LIMIT 1",
    ),
    (
        "college",
        "Show the names of departments whose budget is above average and that have at least one student older than 28.",
        "SELECT name FROM department WHERE budget  >  (SELECT avg(budget) FROM department) "
        "INTERSECT SELECT T2.name FROM student AS T1 JOIN department AS T2 ON T1.dept_id  =  T2.dept_id "
        "WHERE T1.age  >  28",
    ),
    # ---------------------------------------------------------------- store
    ("store", "How many customers are there?", "SELECT count(*) FROM customer"),
    ("store", "List the names of all products.", "SELECT name FROM product"),
    ("store", "Which products cost more than 100?", "SELECT name FROM product WHERE price  >  100"),
    ("store", "How many orders have been cancelled?", 'SELECT count(*) FROM orders WHERE status  =  "cancelled"'),
    ("store", "List all distinct product categories.", "SELECT DISTINCT category FROM product"),
    ("store", "What is the cheapest product?", "SELECT name FROM product ORDER BY price LIMIT 1"),
    (
        "store",
        "Show the name and email of customers from Berlin.",
        "SELECT name ,  email FROM customer WHERE city  =  'Berlin'",
    ),
    ("store", "How many products are in each category?", "SELECT category ,  count(*) FROM product GROUP BY category"),
    (
        "store",
        "What is the average price of products in each category?",
        "SELECT category ,  avg(price) FROM product GROUP BY category",
    ),
    (
        "store",
        "Which city has the most customers?",
        "SELECT city FROM customer GROUP BY city ORDER BY count(*) DESC LIMIT 1",
    ),
    (
        "store",
        "Show the total stock and the average price of all products.",
        "SELECT sum(stock) ,  avg(price) FROM product",
    ),
    (
        "store",
        "List the names of customers who placed an order that is still pending.",
        "SELECT T1.name FROM customer AS T1 JOIN orders AS T2 ON T1.customer_id  =  T2.customer_id "
        "WHERE T2.status  =  'pending'",
    ),
    (
        "store",
        "Show each customer's name and the number of orders they placed.",
        "SELECT T1.name ,  count(*) FROM customer AS T1 JOIN orders AS T2 ON T1.customer_id  =  T2.customer_id "
        "GROUP BY T1.customer_id",
    ),
    (
        "store",
        "Which customers have never placed an order?",
        "SELECT name FROM customer WHERE customer_id NOT IN (SELECT customer_id FROM orders)",
    ),
    (
        "store",
        "Which products are priced above the average price?",
        "SELECT name FROM product WHERE price  >  (SELECT avg(price) FROM product)",
    ),
    (
        "store",
        "Find the name of the product ordered in the largest total quantity.",
        "SELECT T2.name FROM order_item AS T1 JOIN product AS T2 ON T1.product_id  =  T2.product_id "
        "GROUP BY T1.product_id ORDER BY sum(T1.quantity) DESC LIMIT 1",
    ),
    (
        "store",
        "List the names of products that have never been part of a pending order.",
        "SELECT name FROM product EXCEPT SELECT T3.name FROM orders AS T1 JOIN order_item AS T2 "
        "ON T1.order_id  =  T2.order_id JOIN product AS T3 ON T2.product_id  =  T3.product_id "
        "WHERE T1.status  =  'pending'",
    ),
    (
        "store",
        "Find the names of customers who bought both a product in the electronics category and one in "
        "the books category.",
        "SELECT T1.name FROM customer AS T1 JOIN orders AS T2 ON T1.customer_id  =  T2.customer_id "
        "JOIN order_item AS T3 ON T2.order_id  =  T3.order_id JOIN product AS T4 ON T3.product_id  =  T4.product_id "
        "WHERE T4.category  =  'electronics' INTERSECT SELECT T1.name FROM customer AS T1 JOIN orders AS T2 "
        "ON T1.customer_id  =  T2.customer_id JOIN order_item AS T3 ON T2.order_id  =  T3.order_id "
        "JOIN product AS T4 ON T3.product_id  =  T4.product_id WHERE T4.category  =  'books'",
    ),
    (
        "store",
        "Which customers signed up before 2018 or live in Osaka?",
        "SELECT name FROM customer WHERE signup_year  <  2018 OR city  =  'Osaka'",
    ),
    (
        "store",
        "Show the categories with more than 2 products and their average stock.",
        "SELECT category ,  avg(stock) FROM product GROUP BY category HAVING count(*)  >  2",
    ),
    (
        "store",
        "Which customers have an email address ending in '1@example.com'?",
        "SELECT name FROM customer WHERE email LIKE '%1@example.com'",
    ),
    (
        "store",
        "List the order ids and dates of orders placed by customers from Lisbon, newest first.",
        "SELECT T2.order_id ,  T2.order_date FROM customer AS T1 JOIN orders AS T2 "
        "ON T1.customer_id  =  T2.customer_id WHERE T1.city  =  'Lisbon' ORDER BY T2.order_date DESC",
    ),
    (
        "store",
        "What is the name of the customer who ordered the most items in total, among delivered orders?",
        "SELECT T1.name FROM customer AS T1 JOIN orders AS T2 ON T1.customer_id  =  T2.customer_id "
        "JOIN order_item AS T3 ON T2.order_id  =  T3.order_id WHERE T2.status  =  'delivered' "
        "GROUP BY T1.customer_id ORDER BY sum(T3.quantity) DESC LIMIT 1",
    ),
    (
        "store",
        "How many products have a stock between 50 and 150 and a price under 100?",
        "SELECT count(*) FROM product WHERE stock BETWEEN 50 AND 150 AND price  <  100",
    ),
    (
        "store",
        "List the names of products in the books category that are cheaper than every sports product.",
        "SELECT name FROM product WHERE category  =  'books' AND price  <  (SELECT min(price) FROM product "
        "WHERE category  =  'sports')",
    ),
    # ---------------------------------------------------------------- flight
    ("flight", "How many flights are there?", "SELECT count(*) FROM flight"),
    ("flight", "List the names of all airlines.", "SELECT name FROM airline"),
    ("flight", "Which airports are in Japan?", 'SELECT name FROM airport WHERE country  =  "Japan"'),
    ("flight", "What is the longest flight distance?", "SELECT max(distance_km) FROM flight"),
    ("flight", "List aircraft models ordered by capacity.", "SELECT model FROM aircraft ORDER BY capacity"),
    (
        "flight",
        "Show the model and range of aircraft with more than 200 seats.",
        "SELECT model ,  range_km FROM aircraft WHERE capacity  >  200",
    ),
    (
        "flight",
        "How many flights does each airline operate?",
        "SELECT airline_id ,  count(*) FROM flight GROUP BY airline_id",
    ),
    (
        "flight",
        "What are the average and maximum price of flights departing from JFK?",
        "SELECT avg(price) ,  max(price) FROM flight WHERE source_airport  =  'JFK'",
    ),
    ("flight", "Which airline was founded most recently?", "SELECT name FROM airline ORDER BY founded DESC LIMIT 1"),
    (
        "flight",
        "Which destination airport code receives the most flights?",
        "SELECT dest_airport FROM flight GROUP BY dest_airport ORDER BY count(*) DESC LIMIT 1",
    ),
    (
        "flight",
        "Show the names of airlines and the number of flights each operates.",
        "SELECT T2.name ,  count(*) FROM flight AS T1 JOIN airline AS T2 ON T1.airline_id  =  T2.airline_id "
        "GROUP BY T1.airline_id",
    ),
    (
        "flight",
        "List the flight ids of flights operated by Skyway.",
        "SELECT T1.flight_id FROM flight AS T1 JOIN airline AS T2 ON T1.airline_id  =  T2.airline_id "
        'WHERE T2.name  =  "Skyway"',
    ),
    (
        "flight",
        "Which aircraft models are not used by any flight?",
        "SELECT model FROM aircraft WHERE aircraft_id NOT IN (SELECT aircraft_id FROM flight)",
    ),
    (
        "flight",
        "Find the ids of flights that cost more than the average flight price.",
        "SELECT flight_id FROM flight WHERE price  >  (SELECT avg(price) FROM flight)",
    ),
    (
        "flight",
        "Which cities have an airport that is the source of some flight and also the destination of some flight?",
        "SELECT T2.city FROM flight AS T1 JOIN airport AS T2 ON T1.source_airport  =  T2.airport_code "
        "INTERSECT SELECT T2.city FROM flight AS T1 JOIN airport AS T2 ON T1.dest_airport  =  T2.airport_code",
    ),
    (
        "flight",
        "What is the name of the airline with the most flights longer than 5000 km?",
        "SELECT T2.name FROM flight AS T1 JOIN airline AS T2 ON T1.airline_id  =  T2.airline_id "
        "WHERE T1.distance_km  >  5000 GROUP BY T1.airline_id ORDER BY count(*) DESC LIMIT 1",
    ),
    (
        "flight",
        "Show airport names whose city starts with 'Los' or 'New'.",
        "SELECT name FROM airport WHERE city LIKE 'Los%' OR city LIKE 'New%'",
    ),
    (
        "flight",
        "Which countries have more than one airport?",
        "SELECT country FROM airport GROUP BY country HAVING count(*)  >  1",
    ),
    (
        "flight",
        "List the ids and prices of flights departing in March 2024, cheapest first.",
        "SELECT flight_id ,  price FROM flight WHERE departure_date LIKE '2024-03%' ORDER BY price",
    ),
    (
        "flight",
        "Show the models of aircraft used on flights from Madrid.",
        "SELECT DISTINCT T3.model FROM flight AS T1 JOIN airport AS T2 ON T1.source_airport  =  T2.airport_code "
        "JOIN aircraft AS T3 ON T1.aircraft_id  =  T3.aircraft_id WHERE T2.city  =  'Madrid'",
    ),
    (
        "flight",
        "Which airlines do not operate any flight to Tokyo?",
        "SELECT name FROM airline EXCEPT SELECT T2.name FROM flight AS T1 JOIN airline AS T2 "
        "ON T1.airline_id  =  T2.airline_id JOIN airport AS T3 ON T1.dest_airport  =  T3.airport_code "
        "WHERE T3.city  =  'Tokyo'",
    ),
    (
        "flight",
        "Give the airline name and the average price of its flights, for airlines founded before 2000, "
        "most expensive first.",
        "SELECT T2.name ,  avg(T1.price) FROM flight AS T1 JOIN airline AS T2 ON T1.airline_id  =  T2.airline_id "
        "WHERE T2.founded  <  2000 GROUP BY T1.airline_id ORDER BY avg(T1.price) DESC",
    ),
    (
        "flight",
        "How many flights use an aircraft with a range shorter than the flight distance?",
        "SELECT count(*) FROM flight AS T1 JOIN aircraft AS T2 ON T1.aircraft_id  =  T2.aircraft_id "
        "WHERE T2.range_km  <  T1.distance_km",
    ),
    (
        "flight",
        "Find the names of airlines with at least 8 flights or founded before 1980.",
        "SELECT T2.name FROM flight AS T1 JOIN airline AS T2 ON T1.airline_id  =  T2.airline_id "
        "GROUP BY T1.airline_id HAVING count(*)  >=  8 UNION SELECT name FROM airline WHERE founded  <  1980",
    ),
    # ---------------------------------------------------------------- more extra-hard questions
    (
        "concert_singer",
        "What is the name of the singer who performed in the most concerts held in 2015?",
        "SELECT T2.Name FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.Singer_ID  =  T2.Singer_ID "
        "JOIN concert AS T3 ON T1.concert_ID  =  T3.concert_ID WHERE T3.Year  =  2015 GROUP BY T1.Singer_ID "
        "ORDER BY count(*) DESC LIMIT 1",
    ),
    (
        "concert_singer",
        "Show the names of singers older than the average age who performed in some concert.",
        "SELECT T2.Name FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.Singer_ID  =  T2.Singer_ID "
        "WHERE T2.Age  >  (SELECT avg(Age) FROM singer)",
    ),
    (
        "college",
        "Which instructors teach a course with more students than the average course, and were hired before 2015?",
        "SELECT T3.name FROM enrollment AS T1 JOIN course AS T2 ON T1.course_id  =  T2.course_id "
        "JOIN instructor AS T3 ON T2.instructor_id  =  T3.instructor_id WHERE T3.hire_year  <  2015 "
        "GROUP BY T2.instructor_id HAVING count(*)  >  3 ORDER BY T3.name",
    ),
    (
        "college",
        "List names of students who are not in the Music department and whose GPA is above 3.5.",
        "SELECT name FROM student WHERE gpa  >  3.5 EXCEPT SELECT T1.name FROM student AS T1 JOIN department AS T2 "
        "ON T1.dept_id  =  T2.dept_id WHERE T2.name  =  'Music'",
    ),
    (
        "store",
        "For each city, show the number of orders placed by its customers, for cities with more than "
        "5 orders, from most to fewest orders.",
        "SELECT T1.city ,  count(*) FROM customer AS T1 JOIN orders AS T2 ON T1.customer_id  =  T2.customer_id "
        "GROUP BY T1.city HAVING count(*)  >  5 ORDER BY count(*) DESC",
    ),
    (
        "store",
        "Which customers placed orders but never a cancelled one?",
        "SELECT T1.name FROM customer AS T1 JOIN orders AS T2 ON T1.customer_id  =  T2.customer_id EXCEPT "
        "SELECT T1.name FROM customer AS T1 JOIN orders AS T2 ON T1.customer_id  =  T2.customer_id "
        "WHERE T2.status  =  'cancelled'",
    ),
    (
        "flight",
        "What are the model and capacity of the aircraft used on the most flights from Spanish airports?",
        "SELECT T3.model ,  T3.capacity FROM flight AS T1 JOIN airport AS T2 ON T1.source_airport  =  T2.airport_code "
        "JOIN aircraft AS T3 ON T1.aircraft_id  =  T3.aircraft_id WHERE T2.country  =  'Spain' "
        "GROUP BY T1.aircraft_id ORDER BY count(*) DESC LIMIT 1",
    ),
    (
        "flight",
        "Find the cities of airports that are the destination of a flight longer than 8000 km but "
        "never the source of any flight operated by Skyway.",
        "SELECT T2.city FROM flight AS T1 JOIN airport AS T2 ON T1.dest_airport  =  T2.airport_code "
        "WHERE T1.distance_km  >  8000 EXCEPT SELECT T2.city FROM flight AS T1 JOIN airport AS T2 "
        "ON T1.source_airport  =  T2.airport_code JOIN airline AS T3 ON T1.airline_id  =  T3.airline_id "
        "WHERE T3.name  =  'Skyway'",
    ),
]
