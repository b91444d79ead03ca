SELECT count(*) FROM singer	concert_singer
SELECT Name FROM stadium	concert_singer
SELECT Name FROM singer WHERE Age > 40	concert_singer
SELECT avg(Age) ,  min(Age) ,  max(Age) FROM singer WHERE Country  =  'France'	concert_singer
SELECT Song_Name ,  Song_release_year FROM singer ORDER BY Age LIMIT 1	concert_singer
SELECT DISTINCT Country FROM singer WHERE Age  >  30	concert_singer
SELECT Country ,  count(*) FROM singer GROUP BY Country	concert_singer
SELECT Song_Name FROM singer WHERE Age  >  (SELECT avg(Age) FROM singer)	concert_singer
SELECT max(Capacity) ,  avg(Capacity) FROM stadium	concert_singer
SELECT Name ,  Capacity FROM stadium ORDER BY Average DESC LIMIT 1	concert_singer
SELECT count(*) FROM concert WHERE Year  =  2014 OR Year  =  2015	concert_singer
SELECT T2.Name ,  T2.Capacity FROM concert AS T1 JOIN stadium AS T2 ON T1.Stadium_ID  =  T2.Stadium_ID WHERE T1.Year  >=  2014 GROUP BY T2.Stadium_ID ORDER BY count(*) DESC LIMIT 1	concert_singer
SELECT Year FROM concert GROUP BY Year ORDER BY count(*) DESC LIMIT 1	concert_singer
SELECT Name FROM stadium WHERE Stadium_ID NOT IN (SELECT Stadium_ID FROM concert)	concert_singer
SELECT Name FROM stadium EXCEPT SELECT T2.Name FROM concert AS T1 JOIN stadium AS T2 ON T1.Stadium_ID  =  T2.Stadium_ID WHERE T1.Year  =  2014	concert_singer
SELECT T2.concert_Name ,  T2.Theme ,  count(*) FROM singer_in_concert AS T1 JOIN concert AS T2 ON T1.concert_ID  =  T2.concert_ID GROUP BY T2.concert_ID	concert_singer
SELECT T2.Name ,  count(*) FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.Singer_ID  =  T2.Singer_ID GROUP BY T2.Singer_ID	concert_singer
SELECT T2.Name FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.Singer_ID  =  T2.Singer_ID JOIN concert AS T3 ON T1.concert_ID  =  T3.concert_ID WHERE T3.Year  =  2014	concert_singer
SELECT Name ,  Country FROM singer WHERE Song_Name LIKE '%Hey%'	concert_singer
SELECT T2.Name ,  T2.Location FROM concert AS T1 JOIN stadium AS T2 ON T1.Stadium_ID  =  T2.Stadium_ID WHERE T1.Year  =  2014 INTERSECT SELECT T2.Name ,  T2.Location FROM concert AS T1 JOIN stadium AS T2 ON T1.Stadium_ID  =  T2.Stadium_ID WHERE T1.Year  =  2015	concert_singer
SELECT count(*) FROM concert WHERE Stadium_ID  =  (SELECT Stadium_ID FROM stadium ORDER BY Average DESC LIMIT 1)	concert_singer
SELECT count(*) FROM department	college
SELECT title FROM course	college
SELECT name FROM department WHERE building  =  "Watson"	college
SELECT max(salary) FROM instructor	college
SELECT name FROM student ORDER BY gpa DESC	college
SELECT enroll_year ,  count(*) FROM student GROUP BY enroll_year	college
SELECT dept_id ,  avg(salary) FROM instructor GROUP BY dept_id	college
SELECT building FROM department GROUP BY building ORDER BY sum(budget) DESC LIMIT 1	college
SELECT name FROM student ORDER BY gpa DESC LIMIT 3	college
SELECT T1.title ,  T2.name FROM course AS T1 JOIN instructor AS T2 ON T1.instructor_id  =  T2.instructor_id	college
SELECT T2.name FROM instructor AS T1 JOIN department AS T2 ON T1.dept_id  =  T2.dept_id GROUP BY T1.dept_id HAVING count(*)  >  2	college
SELECT T2.name FROM student AS T1 JOIN department AS T2 ON T1.dept_id  =  T2.dept_id GROUP BY T1.dept_id ORDER BY count(*) DESC LIMIT 1	college
SELECT name FROM instructor WHERE salary  >  (SELECT avg(salary) FROM instructor)	college
SELECT name FROM student WHERE student_id NOT IN (SELECT student_id FROM enrollment)	college
SELECT title FROM course WHERE credits  =  4 OR dept_id  =  1	college
SELECT T2.name ,  count(*) FROM course AS T1 JOIN instructor AS T2 ON T1.instructor_id  =  T2.instructor_id GROUP BY T1.instructor_id ORDER BY count(*) DESC	college
SELECT name FROM department EXCEPT SELECT T2.name FROM instructor AS T1 JOIN department AS T2 ON T1.dept_id  =  T2.dept_id	college
SELECT title FROM course WHERE title LIKE '%History%'	college
SELECT name ,  gpa FROM student WHERE age  >  25 AND gpa  >  3.0	college
SELECT T2.title FROM enrollment AS T1 JOIN course AS T2 ON T1.course_id  =  T2.course_id WHERE T2.credits  >=  3 GROUP BY T1.course_id ORDER BY count(*) DESC LIMIT 1	college
SELECT name FROM department WHERE budget  >  (SELECT avg(budget) FROM department) INTERSECT SELECT T2.name FROM student AS T1 JOIN department AS T2 ON T1.dept_id  =  T2.dept_id WHERE T1.age  >  28	college
SELECT name FROM product	store
SELECT name FROM product WHERE price  >  100	store
SELECT count(*) FROM orders WHERE status  =  "cancelled"	store
SELECT name FROM product ORDER BY price LIMIT 1	store
SELECT category ,  count(*) FROM product GROUP BY category	store
SELECT category ,  avg(price) FROM product GROUP BY category	store
SELECT city FROM customer GROUP BY city ORDER BY count(*) DESC LIMIT 1	store
SELECT sum(stock) ,  avg(price) FROM product	store
SELECT T1.name ,  count(*) FROM customer AS T1 JOIN orders AS T2 ON T1.customer_id  =  T2.customer_id GROUP BY T1.customer_id	store
SELECT name FROM product WHERE price  >  (SELECT avg(price) FROM product)	store
SELECT T2.name FROM order_item AS T1 JOIN product AS T2 ON T1.product_id  =  T2.product_id GROUP BY T1.product_id ORDER BY sum(T1.quantity) DESC LIMIT 1	store
SELECT name FROM product EXCEPT SELECT T3.name FROM orders AS T1 JOIN order_item AS T2 ON T1.order_id  =  T2.order_id JOIN product AS T3 ON T2.product_id  =  T3.product_id WHERE T1.status  =  'pending'	store
SELECT name FROM customer WHERE signup_year  <  2018 OR city  =  'Osaka'	store
SELECT category ,  avg(stock) FROM product GROUP BY category HAVING count(*)  >  2	store
SELECT T2.order_id ,  T2.order_date FROM customer AS T1 JOIN orders AS T2 ON T1.customer_id  =  T2.customer_id WHERE T1.city  =  'Lisbon' ORDER BY T2.order_date DESC	store
SELECT T1.name FROM customer AS T1 JOIN orders AS T2 ON T1.customer_id  =  T2.customer_id JOIN order_item AS T3 ON T2.order_id  =  T3.order_id WHERE T2.status  =  'delivered' GROUP BY T1.customer_id ORDER BY sum(T3.quantity) DESC LIMIT 1	store
SELECT count(*) FROM product WHERE stock BETWEEN 50 AND 150 AND price  <  100	store
SELECT name FROM product WHERE category  =  'books' AND price  <  (SELECT min(price) FROM product WHERE category  =  'sports')	store
SELECT count(*) FROM flight	flight
SELECT name FROM airline	flight
SELECT name FROM airport WHERE country  =  "Japan"	flight
SELECT model FROM aircraft ORDER BY capacity	flight
SELECT model ,  range_km FROM aircraft WHERE capacity  >  200	flight
SELECT airline_id ,  count(*) FROM flight GROUP BY airline_id	flight
SELECT name FROM airline ORDER BY founded DESC LIMIT 1	flight
SELECT T2.name ,  count(*) FROM flight AS T1 JOIN airline AS T2 ON T1.airline_id  =  T2.airline_id GROUP BY T1.airline_id	flight
SELECT T1.flight_id FROM flight AS T1 JOIN airline AS T2 ON T1.airline_id  =  T2.airline_id WHERE T2.name  =  "Skyway"	flight
SELECT model FROM aircraft WHERE aircraft_id NOT IN (SELECT aircraft_id FROM flight)	flight
SELECT flight_id FROM flight WHERE price  >  (SELECT avg(price) FROM flight)	flight
SELECT T2.city FROM flight AS T1 JOIN airport AS T2 ON T1.source_airport  =  T2.airport_code INTERSECT SELECT T2.city FROM flight AS T1 JOIN airport AS T2 ON T1.dest_airport  =  T2.airport_code	flight
SELECT T2.name FROM flight AS T1 JOIN airline AS T2 ON T1.airline_id  =  T2.airline_id WHERE T1.distance_km  >  5000 GROUP BY T1.airline_id ORDER BY count(*) DESC LIMIT 1	flight
SELECT country FROM airport GROUP BY country HAVING count(*)  >  1	flight
SELECT DISTINCT T3.model FROM flight AS T1 JOIN airport AS T2 ON T1.source_airport  =  T2.airport_code JOIN aircraft AS T3 ON T1.aircraft_id  =  T3.aircraft_id WHERE T2.city  =  'Madrid'	flight
SELECT name FROM airline EXCEPT SELECT T2.name FROM flight AS T1 JOIN airline AS T2 ON T1.airline_id  =  T2.airline_id JOIN airport AS T3 ON T1.dest_airport  =  T3.airport_code WHERE T3.city  =  'Tokyo'	flight
SELECT T2.name ,  avg(T1.price) FROM flight AS T1 JOIN airline AS T2 ON T1.airline_id  =  T2.airline_id WHERE T2.founded  <  2000 GROUP BY T1.airline_id ORDER BY avg(T1.price) DESC	flight
SELECT T2.name FROM flight AS T1 JOIN airline AS T2 ON T1.airline_id  =  T2.airline_id GROUP BY T1.airline_id HAVING count(*)  >=  8 UNION SELECT name FROM airline WHERE founded  <  1980	flight
SELECT T2.Name FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.Singer_ID  =  T2.Singer_ID JOIN concert AS T3 ON T1.concert_ID  =  T3.concert_ID WHERE T3.Year  =  2015 GROUP BY T1.Singer_ID ORDER BY count(*) DESC LIMIT 1	concert_singer
SELECT T3.name FROM enrollment AS T1 JOIN course AS T2 ON T1.course_id  =  T2.course_id JOIN instructor AS T3 ON T2.instructor_id  =  T3.instructor_id WHERE T3.hire_year  <  2015 GROUP BY T2.instructor_id HAVING count(*)  >  3 ORDER BY T3.name	college
SELECT name FROM student WHERE gpa  >  3.5 EXCEPT SELECT T1.name FROM student AS T1 JOIN department AS T2 ON T1.dept_id  =  T2.dept_id WHERE T2.name  =  'Music'	college
SELECT T1.name FROM customer AS T1 JOIN orders AS T2 ON T1.customer_id  =  T2.customer_id EXCEPT SELECT T1.name FROM customer AS T1 JOIN orders AS T2 ON T1.customer_id  =  T2.customer_id WHERE T2.status  =  'cancelled'	store
SELECT T3.model ,  T3.capacity FROM flight AS T1 JOIN airport AS T2 ON T1.source_airport  =  T2.airport_code JOIN aircraft AS T3 ON T1.aircraft_id  =  T3.aircraft_id WHERE T2.country  =  'Spain' GROUP BY T1.aircraft_id ORDER BY count(*) DESC LIMIT 1	flight
SELECT T2.city FROM flight AS T1 JOIN airport AS T2 ON T1.dest_airport  =  T2.airport_code WHERE T1.distance_km  >  8000 EXCEPT SELECT T2.city FROM flight AS T1 JOIN airport AS T2 ON T1.source_airport  =  T2.airport_code JOIN airline AS T3 ON T1.airline_id  =  T3.airline_id WHERE T3.name  =  'Skyway'	flight
