-- Total cost, bed-days, mean stay and diabetic patients per region, over every hospital's
-- admissions. SUM of the encrypted flag `diabetic` counts the patients who have it.
SELECT region,
       SUM(cost)           AS total_cost,
       SUM(length_of_stay) AS bed_days,
       AVG(length_of_stay) AS mean_stay,
       SUM(diabetic)       AS diabetic_patients,
       COUNT(*)            AS admissions
FROM admissions
GROUP BY region
ORDER BY region;
