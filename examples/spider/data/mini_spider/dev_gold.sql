SELECT Name FROM singer ORDER BY Age DESC	concert_singer
SELECT Location ,  Name FROM stadium WHERE Capacity BETWEEN 5000 AND 10000	concert_singer
SELECT T2.Name ,  count(*) FROM concert AS T1 JOIN stadium AS T2 ON T1.Stadium_ID  =  T2.Stadium_ID GROUP BY T1.Stadium_ID	concert_singer
SELECT Country FROM singer WHERE Age  >  40 INTERSECT SELECT Country FROM singer WHERE Age  <  30	concert_singer
SELECT Name FROM singer WHERE Singer_ID NOT IN (SELECT Singer_ID FROM singer_in_concert)	concert_singer
SELECT name FROM instructor WHERE hire_year  >  2010	college
SELECT name ,  age FROM student WHERE age  <  21	college
SELECT T1.name FROM student AS T1 JOIN department AS T2 ON T1.dept_id  =  T2.dept_id WHERE T2.name  =  "Physics"	college
SELECT T1.name FROM student AS T1 JOIN enrollment AS T2 ON T1.student_id  =  T2.student_id WHERE T2.semester  =  'Fall 2023' INTERSECT SELECT T1.name FROM student AS T1 JOIN enrollment AS T2 ON T1.student_id  =  T2.student_id WHERE T2.semester  =  'Spring 2024'	college
SELECT T1.name FROM student AS T1 JOIN enrollment AS T2 ON T1.student_id  =  T2.student_id JOIN course AS T3 ON T2.course_id  =  T3.course_id WHERE T3.title  =  'Databases' AND T2.grade  =  'A'	college
SELECT avg(gpa) ,  max(age) FROM student WHERE enroll_year  >  2020	college
SELECT count(*) FROM customer	store
SELECT DISTINCT category FROM product	store
SELECT name ,  email FROM customer WHERE city  =  'Berlin'	store
SELECT T1.name FROM customer AS T1 JOIN orders AS T2 ON T1.customer_id  =  T2.customer_id WHERE T2.status  =  'pending'	store
SELECT name FROM customer WHERE customer_id NOT IN (SELECT customer_id FROM orders)	store
SELECT T1.name FROM customer AS T1 JOIN orders AS T2 ON T1.customer_id  =  T2.customer_id JOIN order_item AS T3 ON T2.order_id  =  T3.order_id JOIN product AS T4 ON T3.product_id  =  T4.product_id WHERE T4.category  =  'electronics' INTERSECT SELECT T1.name FROM customer AS T1 JOIN orders AS T2 ON T1.customer_id  =  T2.customer_id JOIN order_item AS T3 ON T2.order_id  =  T3.order_id JOIN product AS T4 ON T3.product_id  =  T4.product_id WHERE T4.category  =  'books'	store
SELECT name FROM customer WHERE email LIKE '%1@example.com'	store
SELECT max(distance_km) FROM flight	flight
SELECT avg(price) ,  max(price) FROM flight WHERE source_airport  =  'JFK'	flight
SELECT dest_airport FROM flight GROUP BY dest_airport ORDER BY count(*) DESC LIMIT 1	flight
SELECT name FROM airport WHERE city LIKE 'Los%' OR city LIKE 'New%'	flight
SELECT flight_id ,  price FROM flight WHERE departure_date LIKE '2024-03%' ORDER BY price	flight
SELECT count(*) FROM flight AS T1 JOIN aircraft AS T2 ON T1.aircraft_id  =  T2.aircraft_id WHERE T2.range_km  <  T1.distance_km	flight
SELECT T2.Name FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.Singer_ID  =  T2.Singer_ID WHERE T2.Age  >  (SELECT avg(Age) FROM singer)	concert_singer
SELECT T1.city ,  count(*) FROM customer AS T1 JOIN orders AS T2 ON T1.customer_id  =  T2.customer_id GROUP BY T1.city HAVING count(*)  >  5 ORDER BY count(*) DESC	store
